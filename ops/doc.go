// Package ops holds operator tooling that runs inside a server or against
// it: first-start seeding of the admin identity today; backup and restore,
// upgrade gates, leadership transfer and metrics as they arrive.
package ops
