package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// SearchUsers returns up to limit enabled users matching every one of the
// terms: a term matches when it begins the username or occurs anywhere in
// the display name, ignoring case (ASCII case only on SQLite). LIKE
// wildcards in the terms match only themselves. Users whose username
// equals the first term come first, then by display name and username.
// It is for the Matrix user directory (ma1sd-rest.md §5.2).
func (s *Store) SearchUsers(ctx context.Context, terms []string, limit int) ([]User, error) {
	users := []User{}
	if len(terms) == 0 || limit <= 0 {
		return users, nil
	}
	// Each number of terms is its own prepared statement (see stmt), so
	// the number is bounded.
	if len(terms) > MaxSearchTerms {
		terms = terms[:MaxSearchTerms]
	}
	var where []string
	args := []any{false}
	for _, t := range terms {
		pat := escapeLike(strings.ToLower(t))
		args = append(args, pat+"%", "%"+pat+"%")
		n := len(args)
		where = append(where, fmt.Sprintf(`(LOWER(username) LIKE $%d ESCAPE '\' OR LOWER(display_name) LIKE $%d ESCAPE '\')`, n-1, n))
	}
	args = append(args, strings.ToLower(terms[0]), limit)
	n := len(args)
	q := `SELECT ` + userColumns + ` FROM users WHERE disabled = $1 AND ` + strings.Join(where, " AND ") +
		` ORDER BY CASE WHEN username = $` + strconv.Itoa(n-1) + ` THEN 0 ELSE 1 END, LOWER(display_name), username LIMIT $` + strconv.Itoa(n)
	rows, err := s.query(ctx, nil, q, args...)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("search users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	return users, nil
}

// MaxSearchTerms is how many terms SearchUsers uses; later ones are
// ignored.
const MaxSearchTerms = 4

// escapeLike makes s match only itself in a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// lookupBatch bounds the parameters of one UsersByEmails query (SQLite
// allows 32766, PostgreSQL 65535; smaller batches keep plans cheap).
const lookupBatch = 500

// UsersByEmails returns the users whose (lower-cased) e-mail address is
// one of emails, keyed by that address, whether verified or not, enabled
// or not: the caller decides what it may reveal. It answers bulk 3PID
// lookups (ma1sd-rest.md §5.4) in a few queries instead of one per entry.
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
		rows, err := s.query(ctx, nil, `SELECT `+userColumns+` FROM users WHERE `+column+` IN (`+strings.Join(marks, ", ")+`)`, batch...)
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
