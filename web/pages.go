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

// Branding is how the pages present the platform mxidp serves. The logo
// and stylesheet are served by mxidp itself: the pages load nothing from
// another origin.
type Branding struct {
	ProductName  string // above every page
	PlatformName string // for the link back to the platform
	PlatformURL  string // "" shows no link
	PrimaryColor string // #rrggbb
	Logo         []byte // "" shows the product name alone
	LogoType     string // its media type
	Stylesheet   []byte // the platform's CSS, after mxidp's own
}

// HasLogo reports whether a logo is shown.
func (b Branding) HasLogo() bool { return len(b.Logo) > 0 }

// themeCSS is the per-deployment stylesheet: the primary colour, then the
// platform's own CSS, which may override anything.
func (b Branding) themeCSS() []byte {
	css := []byte{}
	if b.PrimaryColor != "" {
		css = append(css, ":root { --primary: "+b.PrimaryColor+"; }\n"...)
	}
	return append(css, b.Stylesheet...)
}

// staticCSP is the policy of the static files. Opened on their own, they
// may run nothing and load nothing: an SVG logo is a document that can
// carry script, and sandbox also gives it an origin of its own (CSP Level
// 3 §6.3.2 sandbox). Inline styles stay, which SVG images use.
var staticCSP = []string{"default-src 'none'; style-src 'unsafe-inline'; sandbox"}

// staticFile serves bytes prepared at start-up.
func staticFile(contentType string, body []byte) http.HandlerFunc {
	ct := []string{contentType}
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = ct
		h["Cache-Control"] = cssCache
		h["Content-Security-Policy"] = staticCSP
		h["X-Content-Type-Options"] = valueNosniff
		w.Write(body)
	}
}

// page is what every template gets: the language, the title, branding,
// and where the static files are.
type page struct {
	locale
	Title  string
	Static string
	Brand  Branding
}

// clientBoundCSP allows the pages nothing from elsewhere and no script at
// all. It is the policy of the pages whose form ends at a client: login,
// consent, logout. They name no form-action: browsers apply it to every
// redirect that follows a submission (CSP Level 3 §6.4.1), and the chain
// goes on past the client's redirect URI (Synapse's SSO callback sends the
// browser on to the Matrix client, whose address mxidp cannot know), so
// any list would break real logins. The forms' targets are fixed in the
// templates, which escape every value.
const clientBoundCSP = "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'"

// pageCSP is the policy of every other page: its forms post to mxidp and
// end there.
const pageCSP = clientBoundCSP + "; form-action 'self'"

// render writes a page that must never be cached or framed.
func render(w http.ResponseWriter, status int, name string, data any) {
	renderWithCSP(w, status, name, data, pageCSP)
}

func renderWithCSP(w http.ResponseWriter, status int, name string, data any, csp string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", csp)
	w.WriteHeader(status)
	templates.ExecuteTemplate(w, name, data)
}

type message struct {
	page
	Text, Detail, RequestID string
	Link, LinkText          string // a way onward, when there is one
	Alert                   bool
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

var cssCache = []string{"public, max-age=3600"}
