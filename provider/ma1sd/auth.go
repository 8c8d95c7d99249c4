package ma1sd

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
)

// threePID is a third-party identifier in generated answers: e-mail
// lower-cased, as Synapse stores addresses, msisdn as bare E.164 digits
// without "+", as the Matrix spec writes phone numbers (docs/rest.md).
type threePID struct {
	Medium  string `json:"medium"`
	Address string `json:"address"`
}

// loginProfile is auth.profile of both login answers. Empty members are
// omitted, never null; an absent three_pids leaves Synapse's 3PIDs alone
// even with the provider's threepid.replace (docs/rest.md,
// rest.login_threepids).
type loginProfile struct {
	DisplayName string     `json:"display_name,omitempty"`
	ThreePIDs   []threePID `json:"three_pids,omitempty"`
}

// splitMXID splits "@local:domain" at the first colon, as ma1sd does
// (ma1sd io/kamax/matrix/MatrixID.java).
func splitMXID(id string) (local, domain string, ok bool) {
	rest, ok := strings.CutPrefix(id, "@")
	if !ok {
		return "", "", false
	}
	local, domain, ok = strings.Cut(rest, ":")
	return local, domain, ok && local != "" && domain != ""
}

// ours reports whether local and domain name an account here in its one
// canonical spelling (docs/rest.md): the domain is server_name (any case), the
// localpart byte for byte the canonical one.
func (s *Service) ours(local, domain string) bool {
	if !strings.EqualFold(domain, s.serverName) {
		return false
	}
	canonical, err := provider.CanonicalLocalpart(local, s.serverName)
	return err == nil && canonical == local
}

// verifiedThreePIDs lists the 3PIDs of u that may be shown: only verified
// ones, since the provider adds them to Synapse as validated.
func verifiedThreePIDs(u storage.User) []threePID {
	out := []threePID{}
	if u.Email != "" && u.EmailVerified {
		out = append(out, threePID{"email", strings.ToLower(u.Email)})
	}
	if u.MSISDN != "" { // set by the operator, so verified
		out = append(out, threePID{"msisdn", u.MSISDN})
	}
	return out
}

// authenticate decides a login for the Matrix ID mxid through the login
// page's own password check. A refusal is provider.ErrBadCredentials;
// any other error is an internal failure.
func (s *Service) authenticate(ctx context.Context, mxid, password string) (storage.User, error) {
	local, domain, ok := splitMXID(mxid)
	if !ok || !s.ours(local, domain) {
		return storage.User{}, provider.ErrBadCredentials
	}
	u, err := s.login.CheckPassword(ctx, provider.Attempt{Login: local, Password: password, Door: "rest"})
	var throttled *provider.ThrottledError
	if errors.As(err, &throttled) {
		// The callers know only success and failure; the audit log and
		// the login page tell the rest.
		return storage.User{}, provider.ErrBadCredentials
	}
	if err != nil {
		return storage.User{}, err
	}
	// CheckPassword also accepts e-mail addresses; only the account whose
	// localpart was asked for may pass.
	if canonical, cerr := provider.CanonicalLocalpart(u.Username, s.serverName); cerr != nil || canonical != local {
		return storage.User{}, provider.ErrBadCredentials
	}
	return u, nil
}

// profileOf is the login profile of u: always an object, since the
// provider reads it with a hard key lookup (rest_auth_provider.py).
func (s *Service) profileOf(u storage.User) *loginProfile {
	p := &loginProfile{}
	if !s.opts.LoginOmitsDisplayName {
		p.DisplayName = u.DisplayName
	}
	if tp := verifiedThreePIDs(u); len(tp) > 0 && !s.opts.LoginOmitsThreePIDs {
		p.ThreePIDs = tp
	}
	return p
}

type checkCredentialsRequest struct {
	User *struct {
		ID       *string `json:"id"`
		Password *string `json:"password"`
	} `json:"user"`
}

type checkCredentialsAuth struct {
	Success     bool          `json:"success"` // never omitempty: the provider raises on {"auth":{}}
	MXID        string        `json:"mxid,omitempty"`
	DisplayName string        `json:"display_name,omitempty"`
	Profile     *loginProfile `json:"profile,omitempty"`
}

type checkCredentialsAnswer struct {
	Auth checkCredentialsAuth `json:"auth"`
}

// checkCredentials is the Synapse REST password provider's endpoint
// (rest_auth_provider.py). Every refusal is the same 200 body, whatever
// the reason, so that it names no account (docs/rest.md).
func (s *Service) checkCredentials(ctx context.Context, body []byte) (int, any) {
	var req checkCredentialsRequest
	if e := decode(body, &req); e != nil {
		return e.answer()
	}
	if req.User == nil || req.User.ID == nil || req.User.Password == nil {
		return badJSON("user.id and user.password must be strings").answer()
	}
	u, err := s.authenticate(ctx, *req.User.ID, *req.User.Password)
	if errors.Is(err, provider.ErrBadCredentials) {
		return http.StatusOK, checkCredentialsAnswer{Auth: checkCredentialsAuth{Success: false}}
	}
	if err != nil {
		s.opts.Logger.Error("check_credentials failed", "err", err)
		return unavailable()
	}
	// The provider logs in as the ID it sent, which is canonical here.
	p := s.profileOf(u)
	return http.StatusOK, checkCredentialsAnswer{Auth: checkCredentialsAuth{
		Success: true, MXID: *req.User.ID, DisplayName: p.DisplayName, Profile: p,
	}}
}

type authLoginRequest struct {
	Auth *struct {
		MXID      *string `json:"mxid"`
		Localpart *string `json:"localpart"`
		Domain    *string `json:"domain"`
		Password  *string `json:"password"`
	} `json:"auth"`
}

type localpartID struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type authLoginAuth struct {
	Success bool          `json:"success"` // never omitempty: ma1sd fails without it, also on a refusal
	ID      *localpartID  `json:"id,omitempty"`
	Profile *loginProfile `json:"profile,omitempty"`
}

type authLoginAnswer struct {
	Auth authLoginAuth `json:"auth"`
}

// authLogin is ma1sd's auth/login (ma1sd docs/stores/rest.md).
func (s *Service) authLogin(ctx context.Context, body []byte) (int, any) {
	var req authLoginRequest
	if e := decode(body, &req); e != nil {
		return e.answer()
	}
	a := req.Auth
	if a == nil || a.MXID == nil || a.Localpart == nil || a.Domain == nil || a.Password == nil {
		return badJSON("auth.mxid, auth.localpart, auth.domain and auth.password must be strings").answer()
	}
	var u storage.User
	err := error(provider.ErrBadCredentials)
	// The three spellings of the ID must agree: ma1sd derives localpart and
	// domain from mxid, so anything else was not sent by ma1sd.
	if *a.MXID == "@"+*a.Localpart+":"+*a.Domain {
		u, err = s.authenticate(ctx, *a.MXID, *a.Password)
	}
	if errors.Is(err, provider.ErrBadCredentials) {
		return http.StatusOK, authLoginAnswer{Auth: authLoginAuth{Success: false}}
	}
	if err != nil {
		s.opts.Logger.Error("auth/login failed", "err", err)
		return unavailable()
	}
	return http.StatusOK, authLoginAnswer{Auth: authLoginAuth{
		Success: true, ID: &localpartID{"localpart", *a.Localpart}, Profile: s.profileOf(u),
	}}
}
