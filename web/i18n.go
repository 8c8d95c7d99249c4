package web

import (
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/text/language"
)

// Every string a page shows lives in these catalogues, keyed by message ID;
// templates hold none. A language is complete or absent: a test checks
// that every catalogue has every key of the English one.
var catalogues = map[string]map[string]string{
	"en": {
		"login.title":                  "Sign in",
		"login.to":                     "to continue to %s",
		"login.username":               "Username or e-mail",
		"login.password":               "Password",
		"login.remember":               "Keep me signed in on this device",
		"login.submit":                 "Sign in",
		"login.failed":                 "Unknown username or wrong password.",
		"login.throttled":              "Too many sign-in attempts. Please wait a minute, then try again.",
		"consent.title":                "Allow access?",
		"consent.asks":                 "%s would like to:",
		"consent.scope.openid":         "Know who you are",
		"consent.scope.profile":        "See your username and display name",
		"consent.scope.email":          "See your e-mail address",
		"consent.scope.groups":         "See the groups you belong to",
		"consent.scope.offline_access": "Stay connected when you are not using it",
		"consent.signed_in_as":         "Signed in as %s.",
		"consent.remember":             "Remember my decision",
		"consent.allow":                "Allow",
		"consent.deny":                 "Deny",
		"error.request.title":          "This sign-in request cannot be used",
		"error.request.text":           "The application sent a request that mxidp cannot accept, so you cannot be sent back to it. Tell the application's administrators; the details below help them.",
		"error.request.detail":         "Details: %s",
		"error.title":                  "Something went wrong",
		"error.reference":              "Reference: %s",
		"error.otherbrowser.title":     "This sign-in was started somewhere else",
		"error.otherbrowser.text":      "This sign-in link belongs to a sign-in that was started in another browser, so it cannot be completed here. If someone sent you this link, they may be trying to get into your account: do not follow their instructions. To sign in to %s, go there and start again.",
		"error.otherbrowser.link":      "Go to %s",
		"error.busy.title":             "Too many sign-in attempts",
		"error.busy.text":              "Too many sign-ins were started from your network in a short time. Wait a minute, then go back to the application and try again.",
		"error.expired.title":          "This sign-in link has expired",
		"error.expired.text":           "Sign-in links work for a limited time and only once. Go back to the application and start signing in again.",
		"error.form.title":             "Sign-in failed",
		"error.form.text":              "The form could not be read. Go back to the application and try again.",
		"error.csrf.text":              "The form expired or was sent from another site. Go back to the application and sign in again.",
		"error.unavailable.title":      "Sign-in is unavailable right now",
		"error.unavailable.text":       "Something went wrong on our side. Wait a moment and try again; if it keeps failing, tell the site's administrators the reference below.",
		"error.dbdown.title":           "Sign-in is briefly unavailable",
		"error.dbdown.text":            "Our database cannot be reached right now. This is usually over within moments: wait a little, then try again.",
		"logout.confirm.title":         "Sign out?",
		"logout.confirm.text":          "This signs you out here and in the applications you signed in to with this account.",
		"logout.confirm.submit":        "Sign out",
		"logout.done.title":            "You are signed out",
		"logout.done.text":             "You have been signed out. You can close this window.",
		"back.platform":                "Back to %s",

		// The account page (account_management_uri) and its times.
		"account.title":              "Your account",
		"account.signin.subtitle":    "to manage your account",
		"account.profile":            "Profile",
		"account.profile.name":       "Display name",
		"account.profile.username":   "Username",
		"account.profile.matrix_id":  "Matrix ID",
		"account.profile.email":      "E-mail address",
		"account.profile.none":       "None",
		"account.profile.note":       "These details come from your account on the platform; change them there.",
		"account.sessions":           "Sessions",
		"account.compat.client":      "Matrix login (password or single sign-on)",
		"account.sessions.intro":     "The apps and devices signed in to Matrix with your account:",
		"account.sessions.none":      "No app or device is signed in to Matrix with your account.",
		"account.sessions.end_all":   "End all sessions",
		"account.session.title":      "Session %s",
		"account.session.client":     "App",
		"account.session.device":     "Device ID",
		"account.session.created":    "Signed in",
		"account.session.last_seen":  "Last active",
		"account.session.end":        "End session",
		"account.end.title":          "End this session?",
		"account.end.text":           "%s on the device %s will be signed out of Matrix.",
		"account.end.warning":        "Encrypted messages that are not in your key backup can then no longer be read there.",
		"account.end.done.title":     "Session ended",
		"account.end.done.text":      "The session of %s on the device %s has ended: the device is signed out of Matrix.",
		"account.end_all.title":      "End all sessions?",
		"account.end_all.text":       "Every app and device signed in to Matrix with your account will be signed out.",
		"account.end_all.done.title": "All sessions ended",
		"account.end_all.done.text":  "Every app and device is signed out of Matrix.",
		"account.reset.title":        "Reset your cryptographic identity?",
		"account.reset.text":         "You are about to reset your cryptographic identity (your cross-signing keys). Your other devices, and the people you talk to, will have to verify you again.",
		"account.reset.warning":      "Do this only if you cannot verify this device with another one of yours or with your recovery key.",
		"account.reset.submit":       "Allow the reset",
		"account.reset.done.title":   "Reset allowed",
		"account.reset.done.text":    "Go back to your Matrix client within 10 minutes to finish resetting your identity.",
		"account.nosession.title":    "No such session",
		"account.nosession.text":     "None of your sessions has this device ID; it may have ended already. Your account page lists the sessions you have.",
		"account.error.title":        "That did not work",
		"account.error.csrf":         "The form expired or was sent from another site. Open your account page again and try once more.",
		"account.all":                "Your whole account",
		"account.back":               "Back to your account",
		"account.cancel":             "Cancel",
		"account.signout":            "Sign out",
		"time.just_now":              "just now",
		"time.minutes_ago":           "%d min ago",
		"time.hours_ago":             "%d h ago",
		"time.date":                  "%[2]s %[1]d, %[3]d",
		"time.months":                "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec",

		// Clients that registered themselves, and the Matrix scopes.
		"consent.client.host":            "Web address:",
		"consent.client.self_registered": "This application registered itself: its name, logo and web address are what it says about itself, and nobody has checked them. Allow access only if you have just started signing in to this application yourself.",
		"consent.client.tos":             "Terms of service",
		"consent.client.policy":          "Privacy policy",
		"consent.matrix.api":             "Use your Matrix account: read and send messages, join rooms",
		"consent.matrix.device":          "Sign in as a new device (%s)",

		// m.login.sso: mxidp's sign-in for a Matrix app, and its confirmation.
		"sso.native":          "an app on this device (%s)",
		"sso.confirm.title":   "Continue to %s?",
		"sso.confirm.text":    "You are signing in to your Matrix account as %s, for %s, which can then read and send messages as you.",
		"sso.confirm.address": "It will be sent to:",
		"sso.confirm.warning": "Only continue if you started this sign-in yourself. If someone sent you this link, they may be trying to get into your account: close this page.",
		"sso.confirm.submit":  "Continue",
		"sso.error.title":     "This sign-in cannot be used",
		"sso.error.redirect":  "The Matrix app asked to be sent somewhere mxidp does not send sign-ins. Go back to the app and try again; if it keeps failing, tell its developers the details below.",
		"sso.error.csrf":      "The form expired or was sent from another browser or site. Go back to your Matrix app and start signing in again.",
	},
	"de": {
		"login.title":                  "Anmelden",
		"login.to":                     "um mit %s fortzufahren",
		"login.username":               "Benutzername oder E-Mail-Adresse",
		"login.password":               "Passwort",
		"login.remember":               "Auf diesem Gerät angemeldet bleiben",
		"login.submit":                 "Anmelden",
		"login.failed":                 "Unbekannter Benutzername oder falsches Passwort.",
		"login.throttled":              "Zu viele Anmeldeversuche. Bitte warten Sie eine Minute und versuchen Sie es dann erneut.",
		"consent.title":                "Zugriff erlauben?",
		"consent.asks":                 "%s möchte:",
		"consent.scope.openid":         "Wissen, wer Sie sind",
		"consent.scope.profile":        "Ihren Benutzernamen und Anzeigenamen sehen",
		"consent.scope.email":          "Ihre E-Mail-Adresse sehen",
		"consent.scope.groups":         "Die Gruppen sehen, denen Sie angehören",
		"consent.scope.offline_access": "Verbunden bleiben, auch wenn Sie es gerade nicht nutzen",
		"consent.signed_in_as":         "Angemeldet als %s.",
		"consent.remember":             "Entscheidung merken",
		"consent.allow":                "Erlauben",
		"consent.deny":                 "Ablehnen",
		"error.request.title":          "Diese Anmeldeanfrage ist ungültig",
		"error.request.text":           "Die Anwendung hat eine Anfrage geschickt, die mxidp nicht annehmen kann, deshalb kann Sie mxidp nicht zu ihr zurückschicken. Wenden Sie sich an die Administratoren der Anwendung; die Details unten helfen ihnen.",
		"error.request.detail":         "Details: %s",
		"error.title":                  "Etwas ist schiefgegangen",
		"error.reference":              "Referenz: %s",
		"error.otherbrowser.title":     "Diese Anmeldung wurde anderswo begonnen",
		"error.otherbrowser.text":      "Dieser Anmeldelink gehört zu einer Anmeldung, die in einem anderen Browser begonnen wurde, und kann hier nicht abgeschlossen werden. Falls Ihnen jemand diesen Link geschickt hat, versucht er womöglich, in Ihr Konto zu gelangen: Folgen Sie seinen Anweisungen nicht. Um sich bei %s anzumelden, gehen Sie dorthin und beginnen Sie neu.",
		"error.otherbrowser.link":      "Zu %s",
		"error.busy.title":             "Zu viele Anmeldeversuche",
		"error.busy.text":              "Aus Ihrem Netz wurden in kurzer Zeit zu viele Anmeldungen begonnen. Warten Sie eine Minute, gehen Sie dann zurück zur Anwendung und versuchen Sie es erneut.",
		"error.expired.title":          "Dieser Anmeldelink ist abgelaufen",
		"error.expired.text":           "Anmeldelinks gelten nur kurz und nur einmal. Gehen Sie zurück zur Anwendung und melden Sie sich erneut an.",
		"error.form.title":             "Anmeldung fehlgeschlagen",
		"error.form.text":              "Das Formular konnte nicht gelesen werden. Gehen Sie zurück zur Anwendung und versuchen Sie es erneut.",
		"error.csrf.text":              "Das Formular ist abgelaufen oder kam von einer anderen Website. Gehen Sie zurück zur Anwendung und melden Sie sich erneut an.",
		"error.unavailable.title":      "Die Anmeldung ist gerade nicht möglich",
		"error.unavailable.text":       "Bei uns ist etwas schiefgegangen. Warten Sie einen Moment und versuchen Sie es erneut; falls es weiter scheitert, nennen Sie den Administratoren der Website die Referenz unten.",
		"error.dbdown.title":           "Die Anmeldung ist kurz nicht möglich",
		"error.dbdown.text":            "Unsere Datenbank ist gerade nicht erreichbar. Das ist meist schnell vorbei: Warten Sie kurz und versuchen Sie es dann erneut.",
		"logout.confirm.title":         "Abmelden?",
		"logout.confirm.text":          "Damit melden Sie sich hier und in den Anwendungen ab, bei denen Sie sich mit diesem Konto angemeldet haben.",
		"logout.confirm.submit":        "Abmelden",
		"logout.done.title":            "Sie sind abgemeldet",
		"logout.done.text":             "Sie wurden abgemeldet. Sie können dieses Fenster schließen.",
		"back.platform":                "Zurück zu %s",

		// The account page (account_management_uri) and its times.
		"account.title":              "Ihr Konto",
		"account.signin.subtitle":    "um Ihr Konto zu verwalten",
		"account.profile":            "Profil",
		"account.profile.name":       "Anzeigename",
		"account.profile.username":   "Benutzername",
		"account.profile.matrix_id":  "Matrix-ID",
		"account.profile.email":      "E-Mail-Adresse",
		"account.profile.none":       "Keine",
		"account.profile.note":       "Diese Angaben stammen aus Ihrem Konto auf der Plattform; ändern Sie sie dort.",
		"account.sessions":           "Sitzungen",
		"account.compat.client":      "Matrix-Anmeldung (Passwort oder Single Sign-on)",
		"account.sessions.intro":     "Die Apps und Geräte, die mit Ihrem Konto bei Matrix angemeldet sind:",
		"account.sessions.none":      "Keine App und kein Gerät ist mit Ihrem Konto bei Matrix angemeldet.",
		"account.sessions.end_all":   "Alle Sitzungen beenden",
		"account.session.title":      "Sitzung %s",
		"account.session.client":     "App",
		"account.session.device":     "Geräte-ID",
		"account.session.created":    "Angemeldet",
		"account.session.last_seen":  "Zuletzt aktiv",
		"account.session.end":        "Sitzung beenden",
		"account.end.title":          "Diese Sitzung beenden?",
		"account.end.text":           "%s auf dem Gerät %s wird bei Matrix abgemeldet.",
		"account.end.warning":        "Verschlüsselte Nachrichten, die nicht in Ihrer Schlüsselsicherung sind, lassen sich dort danach nicht mehr lesen.",
		"account.end.done.title":     "Sitzung beendet",
		"account.end.done.text":      "Die Sitzung von %s auf dem Gerät %s ist beendet: Das Gerät ist bei Matrix abgemeldet.",
		"account.end_all.title":      "Alle Sitzungen beenden?",
		"account.end_all.text":       "Alle Apps und Geräte, die mit Ihrem Konto bei Matrix angemeldet sind, werden abgemeldet.",
		"account.end_all.done.title": "Alle Sitzungen beendet",
		"account.end_all.done.text":  "Alle Apps und Geräte sind bei Matrix abgemeldet.",
		"account.reset.title":        "Kryptografische Identität zurücksetzen?",
		"account.reset.text":         "Sie sind dabei, Ihre kryptografische Identität (Ihre Cross-Signing-Schlüssel) zurückzusetzen. Ihre anderen Geräte und die Menschen, mit denen Sie schreiben, müssen Sie danach erneut verifizieren.",
		"account.reset.warning":      "Tun Sie das nur, wenn Sie dieses Gerät weder mit einem anderen Ihrer Geräte noch mit Ihrem Wiederherstellungsschlüssel verifizieren können.",
		"account.reset.submit":       "Zurücksetzen erlauben",
		"account.reset.done.title":   "Zurücksetzen erlaubt",
		"account.reset.done.text":    "Kehren Sie innerhalb von 10 Minuten zu Ihrem Matrix-Client zurück, um das Zurücksetzen Ihrer Identität abzuschließen.",
		"account.nosession.title":    "Diese Sitzung gibt es nicht",
		"account.nosession.text":     "Keine Ihrer Sitzungen hat diese Geräte-ID; vielleicht ist sie schon beendet. Ihre Kontoseite zeigt die Sitzungen, die Sie haben.",
		"account.error.title":        "Das hat nicht geklappt",
		"account.error.csrf":         "Das Formular ist abgelaufen oder kam von einer anderen Website. Öffnen Sie Ihre Kontoseite erneut und versuchen Sie es noch einmal.",
		"account.all":                "Ihr ganzes Konto",
		"account.back":               "Zurück zu Ihrem Konto",
		"account.cancel":             "Abbrechen",
		"account.signout":            "Abmelden",
		"time.just_now":              "gerade eben",
		"time.minutes_ago":           "vor %d Min.",
		"time.hours_ago":             "vor %d Std.",
		"time.date":                  "%[1]d. %[2]s %[3]d",
		"time.months":                "Jan. Feb. März Apr. Mai Juni Juli Aug. Sep. Okt. Nov. Dez.",

		// Clients that registered themselves, and the Matrix scopes.
		"consent.client.host":            "Webadresse:",
		"consent.client.self_registered": "Diese Anwendung hat sich selbst registriert: Name, Logo und Webadresse sind ihre eigenen Angaben, niemand hat sie geprüft. Erlauben Sie den Zugriff nur, wenn Sie gerade selbst begonnen haben, sich bei dieser Anwendung anzumelden.",
		"consent.client.tos":             "Nutzungsbedingungen",
		"consent.client.policy":          "Datenschutzerklärung",
		"consent.matrix.api":             "Ihr Matrix-Konto nutzen: Nachrichten lesen und senden, Räumen beitreten",
		"consent.matrix.device":          "Sich als neues Gerät anmelden (%s)",

		// m.login.sso: mxidp's sign-in for a Matrix app, and its confirmation.
		"sso.native":          "eine App auf diesem Gerät (%s)",
		"sso.confirm.title":   "Weiter zu %s?",
		"sso.confirm.text":    "Sie melden sich als %s bei Ihrem Matrix-Konto an, für %s; dort können dann in Ihrem Namen Nachrichten gelesen und gesendet werden.",
		"sso.confirm.address": "Die Anmeldung geht an:",
		"sso.confirm.warning": "Fahren Sie nur fort, wenn Sie diese Anmeldung selbst begonnen haben. Falls Ihnen jemand diesen Link geschickt hat, versucht er womöglich, in Ihr Konto zu gelangen: Schließen Sie diese Seite.",
		"sso.confirm.submit":  "Weiter",
		"sso.error.title":     "Diese Anmeldung ist ungültig",
		"sso.error.redirect":  "Die Matrix-App möchte an eine Adresse zurückgeschickt werden, an die mxidp keine Anmeldungen schickt. Gehen Sie zurück zur App und versuchen Sie es erneut; falls es weiter scheitert, nennen Sie ihren Entwicklern die Details unten.",
		"sso.error.csrf":      "Das Formular ist abgelaufen oder kam von einem anderen Browser oder einer anderen Website. Gehen Sie zurück zu Ihrer Matrix-App und melden Sie sich erneut an.",
	},
}

// supported lists the catalogues' languages, the default first.
var supported = []language.Tag{language.English, language.German}

var matcher = language.NewMatcher(supported)

// locale is one language's view of the catalogue.
type locale struct {
	Lang string
	msgs map[string]string
}

// pickLocale chooses the page language: the client's ui_locales first
// (OIDC Core §3.1.2.1), then the browser's Accept-Language, else English.
func pickLocale(uiLocales string, r *http.Request) locale {
	var prefs []language.Tag
	for _, l := range strings.Fields(uiLocales) {
		if t, err := language.Parse(l); err == nil {
			prefs = append(prefs, t)
		}
	}
	if accept, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language")); err == nil {
		prefs = append(prefs, accept...)
	}
	_, i, conf := matcher.Match(prefs...)
	if conf == language.No {
		i = 0
	}
	base, _ := supported[i].Base()
	return locale{Lang: base.String(), msgs: catalogues[base.String()]}
}

// T returns the message with this ID.
func (l locale) T(id string) string {
	if m, ok := l.msgs[id]; ok {
		return m
	}
	return catalogues["en"][id]
}

// Tf returns the message with this ID, formatted with args.
func (l locale) Tf(id string, args ...any) string { return fmt.Sprintf(l.T(id), args...) }
