package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// checkCredentialsPath is the endpoint Synapse's REST password provider
// posts to (docs/rest.md).
const checkCredentialsPath = "/_matrix-internal/identity/v1/check_credentials"

const checkStep = "check_credentials"

// checkCredentials returns one unit of Synapse's password check: POST the
// next user's Matrix ID and password, want 200 with success true and the
// same Matrix ID back.
func (p *op) checkCredentials(users []account) func(context.Context, *recorder) *failure {
	var turn atomic.Uint64
	u := p.issuer + checkCredentialsPath
	return func(ctx context.Context, rec *recorder) *failure {
		user := users[(turn.Add(1)-1)%uint64(len(users))]
		mxid := "@" + user.name + ":" + matrixDomain
		body, _ := json.Marshal(map[string]map[string]string{"user": {"id": mxid, "password": user.password}})
		t := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		resp, answer, f := exchange(p.backChannel, checkStep, req, http.StatusOK)
		if f != nil {
			return f
		}
		var a struct {
			Auth struct {
				Success bool   `json:"success"`
				MXID    string `json:"mxid"`
			} `json:"auth"`
		}
		if err := json.Unmarshal(answer, &a); err != nil {
			return fail(checkStep, resp.StatusCode, "the answer is not JSON", describe(req, resp, answer))
		}
		if !a.Auth.Success {
			return fail(checkStep, resp.StatusCode, "success false for the right password", "for "+mxid)
		}
		if a.Auth.MXID != mxid {
			return fail(checkStep, resp.StatusCode, "mxid of another user", fmt.Sprintf("%q for %q", a.Auth.MXID, mxid))
		}
		rec.observe(checkStep, time.Since(t))
		return nil
	}
}
