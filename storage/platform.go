package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// PlatformQueries are the four statements that read a platform's users in
// place (docs/platform.md, "The four queries"). Each takes positional
// parameters ($1, $2) and returns columns by name: id, username and
// password_hash, and optionally email, email_verified, display_name,
// disabled, groups, and (mxidp's additions) msisdn and avatar_url.
type PlatformQueries struct {
	ByLogin string // $1: what the user typed, username or e-mail address
	ByID    string // $1: the id
	ByEmail string // $1: an e-mail address
	Search  string // $1: a lower-case term escaped for LIKE … ESCAPE '\'; $2: the row limit
}

// PlatformOptions tune a Platform.
type PlatformOptions struct {
	// Localpart turns the platform's username into the account's Matrix
	// localpart, or refuses it (provider.CanonicalLocalpart). Required.
	Localpart func(username string) (string, error)
	// Logger hears about unusable rows, once per row. Default: discard.
	Logger       *slog.Logger
	MaxOpenConns int // default 8
}

// Platform reads accounts from a platform's own database, read-only: the
// connection refuses writes (PostgreSQL's default_transaction_read_only,
// MySQL's SET SESSION TRANSACTION READ ONLY, SQLite's mode=ro and
// query_only), and nothing here writes anyway.
// Password hashes stay in the platform's formats; no hash is upgraded.
type Platform struct {
	db                             *sql.DB
	mysql                          bool // $1, $2 became ? (platformQuery.forMySQL)
	byLogin, byID, byEmail, search platformQuery
	opts                           PlatformOptions
	warned                         sync.Map // "query/id" → true: an unusable row already logged
}

// OpenPlatform connects read-only to the platform database url and checks
// every query (see Check).
func OpenPlatform(ctx context.Context, url string, q PlatformQueries, opts PlatformOptions) (*Platform, error) {
	if opts.Localpart == nil {
		return nil, errors.New("platform users: no localpart rule")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 8
	}
	db, d, err := openDB(url, Options{ReadOnly: true, MaxOpenConns: opts.MaxOpenConns})
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to the platform database %s: %w", RedactURL(url), err)
	}
	p := &Platform{db: db, opts: opts, mysql: d.name == mysqlDialect.name,
		byLogin: platformQuery{name: "by_login", sql: q.ByLogin, params: "$1 = what the user typed", required: []string{"id", "username", "password_hash"}},
		byID:    platformQuery{name: "by_id", sql: q.ByID, params: "$1 = the id", required: []string{"id", "username"}},
		byEmail: platformQuery{name: "by_email", sql: q.ByEmail, params: "$1 = an e-mail address", required: []string{"id", "username"}},
		search:  platformQuery{name: "search", sql: q.Search, params: "$1 = the escaped search term, $2 = the row limit", required: []string{"id", "username"}},
	}
	if p.mysql {
		p.byLogin, p.byID, p.byEmail, p.search = p.byLogin.forMySQL(1), p.byID.forMySQL(1), p.byEmail.forMySQL(1), p.search.forMySQL(2)
	}
	if err := p.Check(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return p, nil
}

// Close closes the connection pool.
func (p *Platform) Close() error { return p.db.Close() }

// Ping reports whether the platform database answers.
func (p *Platform) Ping(ctx context.Context) error { return p.db.PingContext(ctx) }

// platformQuery is one configured query, for checks and messages.
type platformQuery struct {
	name     string // its configuration key under users.platform.queries
	sql      string
	params   string // what $1 (and $2) mean, for messages
	required []string

	// For MySQL, made once at start-up: sql with ? for $N, which argument
	// each ? takes, or why the query cannot be rewritten.
	order      []int
	rewriteErr error
}

// forMySQL rewrites q's $N parameters (nargs of them) into MySQL's ?.
func (q platformQuery) forMySQL(nargs int) platformQuery {
	q.sql, q.order, q.rewriteErr = mysqlPlaceholders(q.sql, nargs)
	return q
}

// columnMeaning says what each contract column holds, for the fix a
// message suggests.
var columnMeaning = map[string]string{
	"id":            "the stable user ID (it becomes the OpenID sub)",
	"username":      "the login name (it becomes the Matrix localpart)",
	"password_hash": "the stored password hash",
}

// Check runs every query once with NULL parameters (no row can match) and
// reports, per query, a failure to run or a missing required column, with
// the fix.
func (p *Platform) Check(ctx context.Context) error {
	var problems []string
	for _, q := range []platformQuery{p.byLogin, p.byID, p.byEmail, p.search} {
		args := []any{nil}
		if q.name == "search" {
			args = append(args, 0)
		}
		rows, err := p.query(ctx, q, args...)
		if err != nil {
			problems = append(problems, fmt.Sprintf("users.platform.queries.%s: does not run (%v); it takes %s", q.name, err, q.params))
			continue
		}
		cols, err := rows.Columns()
		rows.Close()
		if err != nil {
			problems = append(problems, fmt.Sprintf("users.platform.queries.%s: %v", q.name, err))
			continue
		}
		for _, want := range q.required {
			if !slices.Contains(cols, want) {
				problems = append(problems, fmt.Sprintf("users.platform.queries.%s: returns no column %q (it returns %s); add AS %s to the column that holds %s",
					q.name, want, strings.Join(cols, ", "), want, columnMeaning[want]))
			}
		}
	}
	if len(problems) > 0 {
		return &PlatformQueryError{Problems: problems}
	}
	return nil
}

// PlatformQueryError lists the configured queries that do not run or do
// not return the columns they must, each with its fix.
type PlatformQueryError struct{ Problems []string }

func (e *PlatformQueryError) Error() string {
	return "the platform's user queries do not fit:\n  " + strings.Join(e.Problems, "\n  ")
}

// query runs a configured query; for MySQL with the arguments in the
// order of its ? (see forMySQL).
func (p *Platform) query(ctx context.Context, q platformQuery, args ...any) (*sql.Rows, error) {
	if p.mysql {
		if q.rewriteErr != nil {
			return nil, q.rewriteErr
		}
		args = reorder(args, q.order)
	}
	return p.db.QueryContext(ctx, q.sql, args...)
}

// platformRow is one user as a query returned it.
type platformRow struct {
	User
	groups []string
}

// rows runs a query and converts every usable row.
func (p *Platform) rows(ctx context.Context, q platformQuery, args ...any) ([]platformRow, error) {
	rows, err := p.query(ctx, q, args...)
	if err != nil {
		// An unreachable platform database closes the health gate, as
		// mxidp's own does (see markUnavailable).
		return nil, fmt.Errorf("platform query %s: %w", q.name, markUnavailable(ctx, err))
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("platform query %s: %w", q.name, err)
	}
	var out []platformRow
	values := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("platform query %s: %w", q.name, err)
		}
		col := make(map[string]any, len(cols))
		for i, c := range cols {
			col[c] = values[i]
		}
		if r, ok := p.convert(q.name, col); ok {
			out = append(out, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("platform query %s: %w", q.name, err)
	}
	return out, nil
}

// convert turns a row into a user. A row without an id, or whose username
// is no Matrix localpart, is unusable: logged once (with the id, never the
// hash) and skipped.
func (p *Platform) convert(query string, col map[string]any) (platformRow, bool) {
	id := text(col["id"])
	username := text(col["username"])
	lp, err := p.opts.Localpart(username)
	if id == "" || err != nil {
		reason := "it has no id"
		if id != "" {
			reason = err.Error()
		}
		if _, seen := p.warned.LoadOrStore(query+"/"+id, true); !seen {
			p.opts.Logger.Warn("a platform user cannot use Matrix; the row is ignored", "query", query, "user_id", id, "reason", reason)
		}
		return platformRow{}, false
	}
	return platformRow{
		User: User{
			ID: id, Username: lp,
			Email:         strings.ToLower(strings.TrimSpace(text(col["email"]))),
			EmailVerified: truth(col["email_verified"]),
			DisplayName:   strings.TrimSpace(text(col["display_name"])),
			MSISDN:        text(col["msisdn"]),
			AvatarURL:     text(col["avatar_url"]),
			PasswordHash:  text(col["password_hash"]),
			Disabled:      truth(col["disabled"]),
		},
		groups: list(col["groups"]),
	}, true
}

// text reads a column value as a string; NULL is "".
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	default:
		return fmt.Sprint(v)
	}
}

// truth reads a boolean column however the platform stores it: a boolean,
// a number (non-zero is true) or text such as "t", "true", "1", "yes".
func truth(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case int64:
		return v != 0
	case float64:
		return v != 0
	}
	switch strings.ToLower(strings.TrimSpace(text(v))) {
	case "t", "true", "1", "y", "yes", "on":
		return true
	}
	return false
}

// list reads the groups column: a comma-separated string, or an array
// (which reaches us in PostgreSQL's text form, {a,b,"c d"}).
func list(v any) []string {
	s := strings.TrimSpace(text(v))
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		return pgArray(s[1 : len(s)-1])
	}
	out := []string{}
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

// pgArray splits the inside of a one-dimensional PostgreSQL text array:
// elements separated by commas, double-quoted when they hold special
// characters, with backslash escapes inside quotes; NULL elements dropped.
func pgArray(s string) []string {
	out := []string{}
	var cur strings.Builder
	quoted, inQuotes, escaped := false, false, false
	flush := func() {
		e := cur.String()
		if quoted || (e != "" && !strings.EqualFold(e, "NULL")) {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
		cur.Reset()
		quoted = false
	}
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case inQuotes && r == '\\':
			escaped = true
		case r == '"':
			inQuotes, quoted = !inQuotes, true
		case r == ',' && !inQuotes:
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 || quoted {
		flush()
	}
	return out
}

// one runs a query that must return at most one user. More than one is a
// configuration mistake: logged, and answered as not found, since picking
// one could log someone in as another.
func (p *Platform) one(ctx context.Context, q platformQuery, arg string) (platformRow, error) {
	rows, err := p.rows(ctx, q, arg)
	if err != nil {
		return platformRow{}, err
	}
	switch len(rows) {
	case 0:
		return platformRow{}, ErrNotFound
	case 1:
		return rows[0], nil
	}
	p.opts.Logger.Error("a platform query returned more than one user for one key; none is used", "query", q.name, "rows", len(rows))
	return platformRow{}, ErrNotFound
}

// UserByLogin runs by_login with what the user typed (trimmed). The row
// counts only when what was typed is its verified e-mail address (case
// aside) or its username in the canonical localpart form (case aside):
// a platform table whose collation folds accents or width finds "alicé"
// or "ａｌｉｃｅ" as alice, and each such spelling would be one more name
// to guess alice's password under.
func (p *Platform) UserByLogin(ctx context.Context, login string) (User, error) {
	login = strings.TrimSpace(login)
	if login == "" {
		return User{}, ErrNotFound
	}
	r, err := p.one(ctx, p.byLogin, login)
	if err != nil {
		return User{}, err
	}
	if r.EmailVerified && r.Email != "" && r.Email == strings.ToLower(login) {
		return r.User, nil
	}
	if lp, err := p.opts.Localpart(login); err != nil || lp != r.Username {
		return User{}, ErrNotFound
	}
	return r.User, nil
}

// UserByID runs by_id.
func (p *Platform) UserByID(ctx context.Context, id string) (User, error) {
	r, err := p.one(ctx, p.byID, id)
	if err == nil && r.ID != id {
		return User{}, ErrNotFound
	}
	return r.User, err
}

// UserByUsername runs by_login with the localpart and keeps the answer
// only if its username is that localpart.
func (p *Platform) UserByUsername(ctx context.Context, localpart string) (User, error) {
	if localpart == "" {
		return User{}, ErrNotFound
	}
	r, err := p.one(ctx, p.byLogin, localpart)
	if err == nil && r.Username != localpart {
		return User{}, ErrNotFound
	}
	return r.User, err
}

// UserByEmail runs by_email.
func (p *Platform) UserByEmail(ctx context.Context, email string) (User, error) {
	if email == "" {
		return User{}, ErrNotFound
	}
	r, err := p.one(ctx, p.byEmail, email)
	return r.User, err
}

// UserByMSISDN finds nobody: none of the four queries (docs/platform.md)
// finds users by phone number.
func (p *Platform) UserByMSISDN(context.Context, string) (User, error) { return User{}, ErrNotFound }

// UsersByMSISDNs finds nobody, as UserByMSISDN.
func (p *Platform) UsersByMSISDNs(context.Context, []string) (map[string]User, error) {
	return map[string]User{}, nil
}

// UsersByEmails runs by_email once per distinct address.
func (p *Platform) UsersByEmails(ctx context.Context, emails []string) (map[string]User, error) {
	out := map[string]User{}
	for _, e := range emails {
		if _, done := out[e]; done || e == "" {
			continue
		}
		u, err := p.UserByEmail(ctx, e)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[e] = u
	}
	return out, nil
}

// UserGroups runs by_id and returns its groups column.
func (p *Platform) UserGroups(ctx context.Context, userID string) ([]string, error) {
	r, err := p.one(ctx, p.byID, userID)
	if errors.Is(err, ErrNotFound) {
		return []string{}, nil
	}
	return r.groups, err
}

// SearchUsers runs search with the longest term (the most selective) and
// keeps the enabled users that also match every other term as the builtin
// search does (each begins the localpart or a word of the display name,
// ignoring case). With several terms it asks the platform for more rows
// than limit, since some are filtered out here.
func (p *Platform) SearchUsers(ctx context.Context, terms []string, limit int) ([]User, error) {
	users := []User{}
	if len(terms) == 0 || limit <= 0 {
		return users, nil
	}
	main, others := searchPlan(terms)
	ask := limit
	if len(others) > 0 {
		ask = min(limit*10, 1000)
	}
	rows, err := p.rows(ctx, p.search, escapeLike(main), ask)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r.Disabled || !matchesAll(r.User, others) {
			continue
		}
		users = append(users, r.User)
		if len(users) == limit {
			break
		}
	}
	// An exact localpart match first.
	first := strings.ToLower(terms[0])
	slices.SortStableFunc(users, func(a, b User) int {
		return boolRank(a.Username == first) - boolRank(b.Username == first)
	})
	return users, nil
}

func matchesAll(u User, terms []string) bool {
	for _, t := range terms {
		if !matchesTerm(u, t) {
			return false
		}
	}
	return true
}

func boolRank(first bool) int {
	if first {
		return 0
	}
	return 1
}
