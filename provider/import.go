package provider

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
)

// ImportedUser is one line of a `mxidp user import` file: an account a
// platform exported, with its password hash in any format package password
// reads. The hash is replaced by argon2id at the user's next login.
type ImportedUser struct {
	Username     string   `json:"username"`
	Email        string   `json:"email"`
	DisplayName  string   `json:"display_name"`
	PasswordHash string   `json:"password_hash"`
	MSISDN       string   `json:"msisdn"`
	AvatarURL    string   `json:"avatar_url"`
	Groups       []string `json:"groups"`
	Disabled     bool     `json:"disabled"`
	// EmailVerified defaults to true: the operator vouches for the export,
	// as for `user add --email`. Set it false for addresses the platform
	// never confirmed.
	EmailVerified *bool `json:"email_verified"`
}

// MaxImportLine bounds one line of an import file.
const MaxImportLine = 64 << 10

// ImportLine is a checked line of an import file, ready to store.
type ImportLine struct {
	Line   int
	User   storage.User
	Groups []string
}

// ReadImport reads and checks a whole JSON-lines import file before
// anything is stored, so that a bad file changes nothing. It returns every
// problem, each with its line number. Blank lines are skipped.
func (a *Accounts) ReadImport(r io.Reader) ([]ImportLine, error) {
	var out []ImportLine
	var problems []string
	seen := map[string]int{} // username, e-mail and phone number → first line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), MaxImportLine)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		l, err := a.importLine(n, text)
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %v", n, err))
			continue
		}
		for _, key := range []string{"username " + l.User.Username, "e-mail " + l.User.Email, "phone number " + l.User.MSISDN} {
			if strings.HasSuffix(key, " ") {
				continue // no address or number
			}
			if first, dup := seen[key]; dup {
				problems = append(problems, fmt.Sprintf("line %d: %s is on line %d too", n, key, first))
			}
			seen[key] = n
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, fmt.Sprintf("after line %d: %v (lines may have at most %d bytes)", len(out)+len(problems), err, MaxImportLine))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("the import file has %d problem(s), nothing was imported:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	return out, nil
}

func (a *Accounts) importLine(n int, text string) (ImportLine, error) {
	var iu ImportedUser
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&iu); err != nil {
		return ImportLine{}, fmt.Errorf("not a JSON object with the fields username, email, display_name, password_hash, msisdn, avatar_url, groups, disabled, email_verified: %v", err)
	}
	lp, err := CanonicalLocalpart(iu.Username, a.ServerName)
	if err != nil {
		return ImportLine{}, err
	}
	u := storage.User{ID: newUserID(), Username: lp, Disabled: iu.Disabled}
	if err := applyProfile(&u, Profile{Email: &iu.Email, DisplayName: &iu.DisplayName, MSISDN: &iu.MSISDN, AvatarURL: &iu.AvatarURL}); err != nil {
		return ImportLine{}, err
	}
	if iu.EmailVerified != nil && u.Email != "" {
		u.EmailVerified = *iu.EmailVerified
	}
	if iu.PasswordHash != "" {
		if f := password.Format(iu.PasswordHash); f == "unknown" {
			return ImportLine{}, fmt.Errorf("password_hash of %s is in no format mxidp reads (mxidp hash-check names the known ones)", lp)
		}
	}
	u.PasswordHash = iu.PasswordHash
	if err := checkGroups(iu.Groups); err != nil {
		return ImportLine{}, err
	}
	return ImportLine{Line: n, User: u, Groups: iu.Groups}, nil
}

// ImportResult counts what Import did.
type ImportResult struct {
	Imported int
	Existing []string // usernames already taken, left as they were
}

// Import stores checked lines. A username (or address) that exists is
// left alone and reported, so that an interrupted import can simply be run
// again.
func (a *Accounts) Import(ctx context.Context, lines []ImportLine) (ImportResult, error) {
	var res ImportResult
	for _, l := range lines {
		u, err := a.Store.CreateUser(ctx, l.User)
		if errors.Is(err, storage.ErrAlreadyExists) {
			res.Existing = append(res.Existing, l.User.Username)
			continue
		}
		if err != nil {
			return res, fmt.Errorf("line %d: %w (%d imported before it; run the import again to continue)", l.Line, err, res.Imported)
		}
		if len(l.Groups) > 0 {
			if err := a.Store.SetUserGroups(ctx, u.ID, l.Groups); err != nil {
				return res, fmt.Errorf("line %d: groups: %w", l.Line, err)
			}
		}
		res.Imported++
		if err := a.audit(ctx, nil, storage.AuditEvent{Event: "user.imported", UserID: u.ID, Username: u.Username,
			Detail: "password hash format: " + password.Format(u.PasswordHash)}); err != nil {
			return res, err
		}
	}
	return res, nil
}
