package ma1sd

import (
	"context"
	"errors"
	"net/http"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
)

func canonicalOf(username, serverName string) (string, error) {
	return provider.CanonicalLocalpart(username, serverName)
}

type profileRequest struct {
	Localpart *string `json:"localpart"`
	Domain    *string `json:"domain"`
	MXID      *string `json:"mxid"`
}

// noProfile answers unknown, foreign, non-canonical and disabled users,
// and internal failures: any status but 200 or 404 would break a Matrix
// client's profile fetch through ma1sd (ma1sd RestProfileProvider.java).
var noProfile = map[string]map[string]any{"profile": {}}

// profile finds the enabled account a profile request names, for the
// profile/* endpoints (ma1sd docs/stores/rest.md).
func (s *Service) profile(ctx context.Context, body []byte, answer func(storage.User) (map[string]any, error)) (int, any) {
	var req profileRequest
	if e := decode(body, &req); e != nil {
		return e.answer()
	}
	if req.Localpart == nil || req.Domain == nil || req.MXID == nil {
		return badJSON("localpart, domain and mxid must be strings").answer()
	}
	if *req.MXID != "@"+*req.Localpart+":"+*req.Domain || !s.ours(*req.Localpart, *req.Domain) {
		return noProfileAnswer()
	}
	u, err := s.users.UserByUsername(ctx, *req.Localpart)
	if errors.Is(err, storage.ErrNotFound) {
		return noProfileAnswer()
	}
	if err == nil && u.Disabled {
		return noProfileAnswer()
	}
	var p map[string]any
	if err == nil {
		p, err = answer(u)
	}
	if err != nil {
		s.opts.Logger.Error("profile lookup failed", "err", err)
		return noProfileAnswer()
	}
	return http.StatusOK, map[string]map[string]any{"profile": p}
}

func (s *Service) profileDisplayName(ctx context.Context, body []byte) (int, any) {
	return s.profile(ctx, body, func(u storage.User) (map[string]any, error) {
		p := map[string]any{}
		if u.DisplayName != "" { // an empty name would be used as the name
			p["display_name"] = u.DisplayName
		}
		return p, nil
	})
}

func (s *Service) profileThreepids(ctx context.Context, body []byte) (int, any) {
	return s.profile(ctx, body, func(u storage.User) (map[string]any, error) {
		if !s.opts.ExposeProfileThreepids {
			return map[string]any{}, nil
		}
		return map[string]any{"threepids": verifiedThreePIDs(u)}, nil
	})
}

func (s *Service) profileRoles(ctx context.Context, body []byte) (int, any) {
	return s.profile(ctx, body, func(u storage.User) (map[string]any, error) {
		groups, err := s.users.UserGroups(ctx, u.ID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"roles": groups}, nil
	})
}
