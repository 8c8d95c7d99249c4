// Package provider makes mxidp's identity decisions: which usernames are
// valid Matrix localparts, how passwords and client secrets are hashed and
// checked, and (with the OpenID and REST issues) who is logged in and what
// a client may receive.
//
// The login page, the REST service and the command line all reach these
// decisions through this package, so that a rule holds at every door.
// Provider knows nothing of HTTP; it calls storage and keys.
package provider
