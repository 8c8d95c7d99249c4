// Package ma1sd serves the REST protocols that Matrix servers already
// speak to identity stores: the Synapse REST password provider's
// check_credentials and ma1sd's (and mxisd's) REST backend (auth, user
// directory, 3PID lookups, profiles), as the provider's
// rest_auth_provider.py and ma1sd docs/stores/rest.md define them;
// docs/rest.md describes mxidp's side.
//
// It decides nothing about passwords itself: every password goes to
// provider.Login.CheckPassword, the same decision the login page uses.
// It answers only for canonical Matrix IDs on the configured server name
// (the provider logs the user in as the ID Synapse sent, so any other
// spelling would become a Matrix account of its own), never emits JSON
// null (both callers read members without checking for it), and reports
// the failures its callers must see as a refusal as flags in a 200: on a
// non-2xx answer the provider raises and ma1sd answers its own caller 500.
package ma1sd
