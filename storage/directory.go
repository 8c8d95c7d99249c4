package storage

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// SearchUsers returns up to limit enabled users matching every one of the
// terms: a term matches when it begins the username or a word of the
// display name, ignoring case (Unicode case folding, the same on every
// database). Characters such as % and _ match only themselves. Users come
// in the order of the words matched by the longest term, then by ID.
// It is for the Matrix user directory (docs/rest.md).
//
// Matching word beginnings rather than any substring is what lets the
// search use an index (user_search_terms) and answer in a few
// milliseconds among hundreds of thousands of users; it is also how
// Synapse's own user directory matches.
func (s *Store) SearchUsers(ctx context.Context, terms []string, limit int) ([]User, error) {
	users := []User{}
	if len(terms) == 0 || limit <= 0 {
		return users, nil
	}
	// The longest term walks the index in order, so the query stops after
	// limit rows; the others must each match a word of the same user. Each
	// number of terms is its own prepared statement (see stmt); there are
	// at most MaxSearchTerms.
	main, rest := searchPlan(terms)
	args := []any{main, main + prefixEnd, false}
	var others []string
	for _, t := range rest {
		args = append(args, t, t+prefixEnd)
		n := len(args)
		others = append(others, fmt.Sprintf(` AND EXISTS (SELECT 1 FROM user_search_terms o WHERE o.user_id = t.user_id AND o.term >= $%d AND o.term < $%d)`, n-1, n))
	}
	// A user with two words of the same beginning comes twice: ask for
	// twice as many rows and keep the first of each.
	args = append(args, 2*limit)
	q := `SELECT ` + userColumns + ` FROM user_search_terms t JOIN users u ON u.id = t.user_id
		WHERE t.term >= $1 AND t.term < $2 AND u.disabled = $3` + strings.Join(others, "") + `
		ORDER BY t.term, t.user_id LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.query(ctx, nil, q, args...)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("search users: %w", err)
		}
		if !seen[u.ID] && len(users) < limit {
			seen[u.ID] = true
			users = append(users, u)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	return users, nil
}

// prefixEnd follows every string that begins with a given prefix in byte
// order: the last Unicode code point, so "ann" ≤ term < "ann"+prefixEnd
// selects the terms beginning with "ann".
const prefixEnd = "\U0010FFFF"

// MaxSearchTerms is how many terms SearchUsers uses; later ones are
// ignored.
const MaxSearchTerms = 4

// searchPlan lower-cases the first MaxSearchTerms terms and separates the
// longest, the most selective, from the others.
func searchPlan(terms []string) (main string, others []string) {
	if len(terms) > MaxSearchTerms {
		terms = terms[:MaxSearchTerms]
	}
	longest := 0
	for i, t := range terms {
		if len(t) > len(terms[longest]) {
			longest = i
		}
	}
	for i, t := range terms {
		if i != longest {
			others = append(others, strings.ToLower(t))
		}
	}
	return strings.ToLower(terms[longest]), others
}

// matchesTerm reports whether term begins one of u's search words.
func matchesTerm(u User, term string) bool {
	for _, w := range searchTerms(u) {
		if strings.HasPrefix(w, term) {
			return true
		}
	}
	return false
}

// searchTerms are the words a user is found by: the username and the
// words of the display name, lower-cased, each once.
func searchTerms(u User) []string {
	var out []string
	for _, w := range append([]string{u.Username}, strings.Fields(u.DisplayName)...) {
		if w = strings.ToLower(w); w != "" && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// indexSearchTerms replaces u's words in user_search_terms, in tx.
func (s *Store) indexSearchTerms(ctx context.Context, tx *sql.Tx, u User) error {
	if _, err := s.exec(ctx, tx, `DELETE FROM user_search_terms WHERE user_id = $1`, u.ID); err != nil {
		return fmt.Errorf("index user %q for search: %w", u.Username, err)
	}
	for _, term := range searchTerms(u) {
		if _, err := s.exec(ctx, tx, `INSERT INTO user_search_terms (term, user_id) VALUES ($1, $2)`, term, u.ID); err != nil {
			return fmt.Errorf("index user %q for search: %w", u.Username, err)
		}
	}
	return nil
}

// RebuildSearchTerms indexes every user afresh: after the migration that
// made the index, and after users were written around the Store (bulk
// loads). It returns how many users it indexed.
func (s *Store) RebuildSearchTerms(ctx context.Context) (int, error) {
	users, err := s.ListUsers(ctx)
	if err != nil {
		return 0, err
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `DELETE FROM user_search_terms`); err != nil {
			return err
		}
		// Many rows per INSERT; these one-off statements bypass the cache.
		var rows []string
		var args []any
		flush := func() error {
			if len(rows) == 0 {
				return nil
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO user_search_terms (term, user_id) VALUES `+strings.Join(rows, ", "), args...)
			rows, args = rows[:0], args[:0]
			return err
		}
		for _, u := range users {
			for _, term := range searchTerms(u) {
				args = append(args, term, u.ID)
				rows = append(rows, fmt.Sprintf("($%d, $%d)", len(args)-1, len(args)))
				if len(rows) == 500 {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		return flush()
	})
	if err != nil {
		return 0, fmt.Errorf("rebuild the search index: %w", err)
	}
	return len(users), nil
}

// needsSearchTerms reports whether users exist but none is indexed: the
// state right after the migration that made user_search_terms.
func (s *Store) needsSearchTerms(ctx context.Context) (bool, error) {
	var users, terms int
	if err := s.queryRow(ctx, nil, `SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM user_search_terms)`).Scan(&users, &terms); err != nil {
		return false, err
	}
	return users > 0 && terms == 0, nil
}

// lookupBatch bounds the parameters of one UsersByEmails query (SQLite
// allows 32766, PostgreSQL 65535; smaller batches keep plans cheap).
const lookupBatch = 500

// UsersByEmails returns the users whose (lower-cased) e-mail address is
// one of emails, keyed by that address, whether verified or not, enabled
// or not: the caller decides what it may reveal. It answers bulk 3PID
// lookups (docs/rest.md) in a few queries instead of one per entry.
func (s *Store) UsersByEmails(ctx context.Context, emails []string) (map[string]User, error) {
	return s.usersIn(ctx, "email", emails, func(u User) string { return u.Email })
}

// UsersByMSISDNs is UsersByEmails for phone numbers (E.164 digits without
// "+"), keyed by number.
func (s *Store) UsersByMSISDNs(ctx context.Context, msisdns []string) (map[string]User, error) {
	return s.usersIn(ctx, "msisdn", msisdns, func(u User) string { return u.MSISDN })
}

// usersIn loads the users whose column holds one of values, in batches,
// keyed by key(user). The column name is the caller's constant.
func (s *Store) usersIn(ctx context.Context, column string, values []string, key func(User) string) (map[string]User, error) {
	out := make(map[string]User)
	seen := make(map[string]bool)
	var batch []any
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		// Padding with a repeat keeps one statement text for every batch.
		for len(batch) < lookupBatch {
			batch = append(batch, batch[0])
		}
		marks := make([]string, len(batch))
		for i := range batch {
			marks[i] = "$" + strconv.Itoa(i+1)
		}
		rows, err := s.query(ctx, nil, `SELECT `+userColumns+` FROM users WHERE `+column+` <> '' AND `+column+` IN (`+strings.Join(marks, ", ")+`)`, batch...)
		if err != nil {
			return fmt.Errorf("load users by %s: %w", column, err)
		}
		defer rows.Close()
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				return fmt.Errorf("load users by %s: %w", column, err)
			}
			out[key(u)] = u
		}
		batch = batch[:0]
		return rows.Err()
	}
	for _, v := range values {
		if v == "" || seen[v] {
			continue
		}
		seen[v] = true
		batch = append(batch, v)
		if len(batch) == lookupBatch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// escapeLike makes s match only itself in a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
