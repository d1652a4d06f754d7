// Package api serves the CloudStack-compatible HTTP API (/client/api) with
// request signing, JSON and XML envelopes and CloudStack error codes, plus
// the ops endpoints (/v1/health, /v1/ready, /v1/status) and the cluster's
// internal endpoints.
package api
