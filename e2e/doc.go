// Package e2e drives the built stratus binary as real processes on loopback, behind a real HAProxy, through the CloudStack Go SDK and raw signed HTTP.
package e2e
