package ma1sd

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
)

// localpartOf returns the localpart of u when directory and lookups may
// reveal u: enabled, with a username Matrix accepts.
func (s *Service) localpartOf(u storage.User) (string, bool) {
	if u.Disabled {
		return "", false
	}
	lp, err := canonicalOf(u.Username, s.serverName)
	return lp, err == nil
}

type directoryRequest struct {
	By         *string `json:"by"`
	SearchTerm *string `json:"search_term"`
}

type directoryResult struct {
	UserID      string `json:"user_id"` // bare localpart: ma1sd adds "@" and ":domain"
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

type directoryAnswer struct {
	Limited bool              `json:"limited"`
	Results []directoryResult `json:"results"`
}

// directorySearch is ma1sd's directory/user/search (ma1sd
// docs/stores/rest.md). A failure answers an empty, limited result: any
// other status would also discard the homeserver's own results (ma1sd
// DirectoryManager.java).
func (s *Service) directorySearch(ctx context.Context, body []byte) (int, any) {
	var req directoryRequest
	if e := decode(body, &req); e != nil {
		return e.answer()
	}
	if req.By == nil {
		return badJSON("by must be a string").answer()
	}
	if *req.By != "name" && *req.By != "threepid" {
		return http.StatusBadRequest, matrixError{"M_INVALID_PARAM", `by must be "name" or "threepid"`}
	}
	empty := directoryAnswer{Results: []directoryResult{}}
	term := ""
	if req.SearchTerm != nil {
		term = strings.TrimSpace(*req.SearchTerm)
	}
	if local, domain, ok := strings.Cut(term, ":"); ok && *req.By == "name" {
		if !strings.EqualFold(domain, s.serverName) {
			return http.StatusOK, empty
		}
		term = strings.TrimPrefix(local, "@")
	}
	if strings.TrimSpace(term) == "" {
		return http.StatusOK, empty
	}
	var users []storage.User
	var err error
	if *req.By == "name" {
		users, err = s.users.SearchUsers(ctx, strings.Fields(term), s.opts.MaxResults+1)
	} else {
		users, err = s.usersByThreePID(ctx, term)
	}
	if err != nil {
		s.opts.Logger.Error("directory search failed", "err", err)
		return emptyDirectory()
	}
	out := empty
	for _, u := range users {
		lp, ok := s.localpartOf(u)
		if !ok {
			continue
		}
		if len(out.Results) == s.opts.MaxResults {
			out.Limited = true
			break
		}
		out.Results = append(out.Results, directoryResult{UserID: lp, DisplayName: u.DisplayName, AvatarURL: u.AvatarURL})
	}
	return http.StatusOK, out
}

// usersByThreePID finds the owner of a verified 3PID, matched exactly
// (docs/rest.md: no e-mail enumeration by prefix).
func (s *Service) usersByThreePID(ctx context.Context, term string) ([]storage.User, error) {
	medium := "msisdn"
	if strings.Contains(term, "@") {
		medium = "email"
	}
	u, ok, err := s.ownerOf(ctx, medium, term)
	if err != nil || !ok {
		return []storage.User{}, err
	}
	return []storage.User{u}, nil
}

// ownerOf returns the enabled user who verified this 3PID (docs/rest.md).
func (s *Service) ownerOf(ctx context.Context, medium, address string) (storage.User, bool, error) {
	var u storage.User
	var err error
	switch medium {
	case "email":
		u, err = s.users.UserByEmail(ctx, normaliseEmail(address))
	case "msisdn":
		number, ok := provider.MSISDN(address)
		if !ok {
			return storage.User{}, false, nil
		}
		u, err = s.users.UserByMSISDN(ctx, number)
	default:
		return storage.User{}, false, nil
	}
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, false, nil
	}
	if err != nil {
		return storage.User{}, false, err
	}
	if _, ok := s.localpartOf(u); !ok || !verified(u, medium) {
		return storage.User{}, false, nil
	}
	return u, true, nil
}

// verified reports whether u's 3PID of this medium may be revealed: an
// e-mail address once verified, a phone number always (the operator set it).
func verified(u storage.User, medium string) bool {
	return medium == "msisdn" || u.EmailVerified
}

// normaliseEmail is the matching form of an address: trimmed and
// lower-cased, as Synapse stores e-mail addresses.
func normaliseEmail(address string) string {
	return strings.ToLower(strings.TrimSpace(address))
}

type lookupEntry struct {
	Medium  string       `json:"medium"`
	Address string       `json:"address"`
	ID      *localpartID `json:"id,omitempty"`
}

type singleRequest struct {
	Lookup *struct {
		Medium  *string `json:"medium"`
		Address *string `json:"address"`
	} `json:"lookup"`
}

// identitySingle is ma1sd's identity/single (ma1sd docs/stores/rest.md):
// found echoes medium and address verbatim, not found is {} with no lookup
// key, which is how ma1sd RestThreePidProvider.java tells a miss.
func (s *Service) identitySingle(ctx context.Context, body []byte) (int, any) {
	var req singleRequest
	if e := decode(body, &req); e != nil {
		return e.answer()
	}
	if req.Lookup == nil || req.Lookup.Medium == nil || req.Lookup.Address == nil {
		return badJSON("lookup must be an object with string medium and address").answer()
	}
	medium, address := *req.Lookup.Medium, *req.Lookup.Address
	u, ok, err := s.ownerOf(ctx, medium, address)
	if err != nil {
		s.opts.Logger.Error("identity lookup failed", "err", err)
		return unavailable()
	}
	if !ok {
		return http.StatusOK, struct{}{}
	}
	lp, _ := s.localpartOf(u)
	return http.StatusOK, map[string]lookupEntry{"lookup": {medium, address, &localpartID{"localpart", lp}}}
}

type bulkRequest struct {
	Lookup *[]struct {
		Medium  *string `json:"medium"`
		Address *string `json:"address"`
	} `json:"lookup"`
}

type bulkAnswer struct {
	Lookup []lookupEntry `json:"lookup"`
}

// identityBulk is ma1sd's identity/bulk (ma1sd docs/stores/rest.md): hits
// only, in request order, one per distinct pair, echoed byte for byte, since
// ma1sd matches answers to what it asked by exact equality. Entries
// without a string medium and address are skipped, not fatal to the batch.
func (s *Service) identityBulk(ctx context.Context, body []byte) (int, any) {
	var req bulkRequest
	if e := decode(body, &req); e != nil {
		return e.answer()
	}
	if req.Lookup == nil {
		return badJSON("lookup must be an array").answer()
	}
	// The matching form of each address, by medium; other media match nothing.
	matching := func(medium, address string) string {
		switch medium {
		case "email":
			return normaliseEmail(address)
		case "msisdn":
			number, _ := provider.MSISDN(address)
			return number
		}
		return ""
	}
	wanted := map[string][]string{}
	for _, l := range *req.Lookup {
		if l.Medium != nil && l.Address != nil {
			if m := matching(*l.Medium, *l.Address); m != "" {
				wanted[*l.Medium] = append(wanted[*l.Medium], m)
			}
		}
	}
	owners := map[string]map[string]storage.User{}
	var err error
	if owners["email"], err = s.users.UsersByEmails(ctx, wanted["email"]); err == nil {
		owners["msisdn"], err = s.users.UsersByMSISDNs(ctx, wanted["msisdn"])
	}
	if err != nil {
		s.opts.Logger.Error("bulk identity lookup failed", "err", err)
		return unavailable()
	}
	out := bulkAnswer{Lookup: []lookupEntry{}}
	seen := map[[2]string]bool{}
	for _, l := range *req.Lookup {
		if l.Medium == nil || l.Address == nil {
			continue
		}
		key := [2]string{*l.Medium, *l.Address}
		if seen[key] {
			continue
		}
		seen[key] = true
		u, ok := owners[*l.Medium][matching(*l.Medium, *l.Address)]
		if !ok || !verified(u, *l.Medium) {
			continue
		}
		if lp, ok := s.localpartOf(u); ok {
			out.Lookup = append(out.Lookup, lookupEntry{*l.Medium, *l.Address, &localpartID{"localpart", lp}})
		}
	}
	return http.StatusOK, out
}
