package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
	"github.com/spf13/cobra"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// maxDeviceName is the longest device display name Synapse takes, in
// characters (Synapse synapse/handlers/device.py,
// MAX_DEVICE_DISPLAY_NAME_LEN).
const maxDeviceName = 100

func (a *app) userTokenCommand() *cobra.Command {
	var deviceID, deviceName string
	var refreshable bool
	cmd := &cobra.Command{
		Use:   "token USERNAME [--device-id ID] [--device-name NAME] [--refreshable]",
		Short: "Issue a Matrix access token for a service account, without its password (next-gen auth); printed once",
		Long: `Logs the user in as a Matrix device, as a password login at the Matrix
login API would, and prints the access token once: for an integration's
service account that has no password, or should not hold one. mxidp
stores the token's ID only (and a refresh token's hash); the token works
until it is logged out (POST /_matrix/client/v3/logout with it), the
session is ended on the account page, the user is disabled, or the same
--device-id gets a new token. With --refreshable it expires after
tokens.access_token_lifetime and comes with a refresh token for
POST /_matrix/client/v3/refresh. Needs next-gen auth (matrix.synapse)
and a Synapse that answers: the user and the device are made there first.
Works for platform users too.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if deviceID != "" && !provider.ValidDeviceID(deviceID) {
				return usageError{fmt.Errorf("--device-id %q: use 1 to 255 of A-Z a-z 0-9 - . _ ~", deviceID)}
			}
			if utf8.RuneCountInString(deviceName) > maxDeviceName {
				return usageError{fmt.Errorf("--device-name is longer than %d characters, which Synapse refuses", maxDeviceName)}
			}
			return a.issueToken(cmd.Context(), argv[0], deviceID, deviceName, refreshable)
		},
	}
	cmd.Flags().StringVar(&deviceID, "device-id", "", "the Matrix device ID (default: a new one); one the user has is taken over, its old token revoked")
	cmd.Flags().StringVar(&deviceName, "device-name", "", "the device's display name, which the user's contacts see")
	cmd.Flags().BoolVar(&refreshable, "refreshable", false, "an expiring access token with a refresh token")
	return cmd
}

// issueToken builds what serve builds for a Matrix login (the store, the
// account source, the connection to Synapse, the OpenID provider whose
// key seals access tokens), starts the session and prints its tokens.
func (a *app) issueToken(ctx context.Context, username, deviceID, deviceName string, refreshable bool) error {
	c, err := a.config()
	if err != nil {
		return err
	}
	if !c.Matrix.Synapse.NextGen() {
		return usageError{errors.New("user token needs next-gen auth: set matrix.synapse.url and matrix.synapse.shared_secret_file " +
			"(docs/next-gen-auth.md); the token is a Matrix device's, made in Synapse, and only Synapse in next-gen auth asks mxidp about it")}
	}
	return a.withAccounts(ctx, func(c Config, store *storage.Store, users storage.Users) error {
		log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		secret, err := loadSecret(ctx, c, store, log)
		if err != nil {
			return err
		}
		openID := &provider.OpenID{Store: store, Users: users, Issuer: c.Issuer, Lifetimes: tokenLifetimes(c), Logger: log}
		if openID.Matrix, _, err = nextGenMatrix(c, store, users, log); err != nil {
			return err
		}
		op, err := provider.NewOP(openID, secret)
		if err != nil {
			return fmt.Errorf("openid provider: %w", err)
		}
		s, err := openID.IssueServiceToken(ctx, username, deviceID, deviceName, refreshable)
		if errors.Is(err, storage.ErrNotFound) || errors.Is(err, provider.ErrAccountDisabled) {
			return usageError{err}
		}
		var oe *oidc.Error
		if errors.As(err, &oe) {
			// Synapse could not be reached: say so, not in OAuth's terms.
			return fmt.Errorf("issue a token for %q: %s (Synapse at matrix.synapse.url %s): %w", username, oe.Description, c.Matrix.Synapse.URL, oe.Parent)
		}
		if err != nil {
			return fmt.Errorf("issue a token for %q: %w", username, err)
		}
		access, err := s.SealedAccessToken(op.Crypto())
		if err != nil {
			return fmt.Errorf("seal the access token: %w", err)
		}
		fmt.Fprintf(a.stdout, "user_id: @%s:%s\ndevice_id: %s\naccess_token: %s\n", s.User.Username, c.Matrix.ServerName, s.DeviceID, access)
		if s.RefreshToken != "" {
			fmt.Fprintf(a.stdout, "refresh_token: %s\n", s.RefreshToken)
		}
		if s.Expiring {
			fmt.Fprintf(a.stdout, "expires_in: %s (renew at POST /_matrix/client/v3/refresh with the refresh token)\n", time.Until(s.ExpiresAt).Round(time.Second))
		}
		fmt.Fprintf(a.stdout, "(shown once: mxidp stores no copy it could show again)\n")
		return nil
	})
}
