// Package web is mxidp's HTTP surface: the chi router, the middleware every
// request passes (request IDs, a structured log line, panic recovery,
// security headers), the operational endpoints (/healthz, /readyz), and the
// mount points of the OpenID provider, the login pages and the REST
// service.
//
// Web turns requests into calls on provider and keys and their answers into
// responses; it makes no identity decision itself and never logs a query
// string, a form body or a header value that could carry a secret.
package web
