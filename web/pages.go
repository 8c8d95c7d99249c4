package web

import (
	"embed"
	"html/template"
	"net/http"
)

//go:embed templates/*.html
var templateFiles embed.FS

var templates = template.Must(template.ParseFS(templateFiles, "templates/*.html"))

// pageCSP allows the pages nothing from elsewhere and no script at all.
// Form submissions may go to mxidp and to formTarget: browsers apply
// form-action to the redirects that follow a submission, and a login ends
// in a redirect to the client.
func pageCSP(formTarget string) string {
	return "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' " + formTarget +
		"; frame-ancestors 'none'; base-uri 'none'"
}

// render writes a page that must never be cached or framed.
func render(w http.ResponseWriter, status int, name string, data any) {
	renderWithFormTarget(w, status, name, data, "")
}

func renderWithFormTarget(w http.ResponseWriter, status int, name string, data any, formTarget string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP(formTarget))
	w.WriteHeader(status)
	templates.ExecuteTemplate(w, name, data)
}

type message struct {
	Title, Text, RequestID string
	Alert                  bool
}

// errorPage tells the user what happened and what to do next.
func errorPage(w http.ResponseWriter, status int, title, text string) {
	render(w, status, "message.html", message{Title: title, Text: text, RequestID: w.Header().Get(requestIDHeader), Alert: true})
}
