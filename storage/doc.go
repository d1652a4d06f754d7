// Package storage will hold primary and secondary storage: pool selection and
// capacity, the volume, template and snapshot lifecycle, and pool drivers.
package storage
