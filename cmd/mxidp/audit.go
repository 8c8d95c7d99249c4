package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mxidp/mxidp/storage"
	"github.com/spf13/cobra"
)

func (a *app) auditCommand() *cobra.Command {
	var f storage.AuditFilter
	var since string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit [--user USER] [--since WHEN] [--event PREFIX] [--limit N] [--json]",
		Short: "Show the audit log of security events (oldest first)",
		Long: `Shows logins (succeeded, failed with the reason, throttled), logouts, and
changes to users, clients and signing keys. --user matches a username (as
typed at a login or as stored) or a user ID. --since takes a duration back
from now (24h, 30m) or a date (2026-11-01 or 2026-11-01T08:00:00Z). Events
are kept for audit.retention.

Throttled logins are counted, not listed one by one: one event per
throttle counter (login name, account or network) and hour, whose COUNT
says how many checks it refused, from its time to LAST.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usageError{err}
				}
				f.Since = t
			}
			f.User = strings.ToLower(strings.TrimSpace(f.User))
			return a.withStore(cmd.Context(), func(c Config, s *storage.Store) error {
				if f.User != "" {
					// A username also finds the events recorded under the ID only.
					u, err := s.UserByUsername(cmd.Context(), f.User)
					switch {
					case err == nil:
						f.UserID = u.ID
					case !errors.Is(err, storage.ErrNotFound):
						return err
					}
				}
				events, err := s.AuditEvents(cmd.Context(), f)
				if err != nil {
					return err
				}
				return a.printAudit(events, asJSON)
			})
		},
	}
	cmd.Flags().StringVar(&f.User, "user", "", "only events of this user (username or ID)")
	cmd.Flags().StringVar(&since, "since", "", "only events since then: a duration back (24h) or a date (2026-11-01)")
	cmd.Flags().StringVar(&f.Event, "event", "", "only events whose name starts with this (login, login.failed, user, client, keys, logout)")
	cmd.Flags().IntVar(&f.Limit, "limit", 1000, "at most this many of the newest events")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// parseSince reads --since: a duration back from now, or a date or time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: give a duration back from now like 24h, or a date like 2026-11-01", s)
}

type auditJSON struct {
	At       time.Time `json:"at"`
	Event    string    `json:"event"`
	UserID   string    `json:"user_id,omitempty"`
	Username string    `json:"username,omitempty"`
	ClientID string    `json:"client_id,omitempty"`
	Network  string    `json:"network,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	// Count is how many times the event happened, the last at LastAt
	// (given only when more than once).
	Count  int64      `json:"count"`
	LastAt *time.Time `json:"last_at,omitempty"`
}

func (a *app) printAudit(events []storage.AuditEvent, asJSON bool) error {
	if asJSON {
		out := make([]auditJSON, 0, len(events))
		for _, e := range events {
			j := auditJSON{e.At, e.Event, e.UserID, e.Username, e.ClientID, e.Network, e.Detail, e.Count, nil}
			if e.Count > 1 {
				j.LastAt = &e.Last
			}
			out = append(out, j)
		}
		return printJSON(a, out)
	}
	const stamp = "2006-01-02 15:04:05.000"
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tCOUNT\tLAST\tUSER\tCLIENT\tNETWORK\tDETAIL")
	for _, e := range events {
		user := e.Username
		if user == "" {
			user = e.UserID
		}
		last := ""
		if e.Count > 1 {
			last = e.Last.Format(stamp)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", e.At.Format(stamp), e.Event, e.Count, dash(last), dash(user), dash(e.ClientID), dash(e.Network), dash(e.Detail))
	}
	return tw.Flush()
}
