// Package ma1sd serves the REST protocols that Matrix servers already
// speak to identity stores: the Synapse REST password provider's
// check_credentials and ma1sd's (and mxisd's) REST backend (auth, user
// directory, 3PID lookups, profiles), as specified in ma1sd-rest.md.
//
// It decides nothing about passwords itself: every password goes to
// provider.Login.CheckPassword, the same decision the login page uses.
// It answers only for canonical Matrix IDs on the configured server name
// (ma1sd-rest.md §3A.2), never emits JSON null, and reports the failures
// its callers must see as a refusal as flags in a 200 (§3.3).
package ma1sd
