package web

import (
	"embed"
	"html/template"
	"net/http"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static/mxidp.css
var stylesheet []byte

var templates = template.Must(template.ParseFS(templateFiles, "templates/*.html"))

// StaticPath is where the pages' own files are served; pages load nothing
// from any other origin.
const StaticPath = "/static"

// Branding is how the pages present the platform mxidp serves.
type Branding struct {
	ProductName  string // above every page
	PlatformName string // for the link back to the platform
	PlatformURL  string // "" shows no link
}

// page is what every template gets: the language, the title, branding,
// and where the static files are.
type page struct {
	locale
	Title  string
	Static string
	Brand  Branding
}

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
	page
	Text, RequestID string
	Alert           bool
}

// messagePage shows a title and a text from the catalogue; an error says
// what happened, what to do next, and the request ID for the operators.
func messagePage(w http.ResponseWriter, p page, status int, titleID, textID string) {
	p.Title = p.T(titleID)
	m := message{page: p, Text: p.T(textID)}
	if status >= 400 {
		m.Alert, m.RequestID = true, w.Header().Get(requestIDHeader)
	}
	render(w, status, "message.html", m)
}

var cssCache = []string{"public, max-age=86400"}
var cssType = []string{"text/css; charset=utf-8"}

func serveStylesheet(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Content-Type"] = cssType
	h["Cache-Control"] = cssCache
	w.Write(stylesheet)
}
