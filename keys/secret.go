package keys

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/chacha20poly1305"
)

// minSecretLen is the least amount of key material a secret key file must
// hold: 256 bits.
const minSecretLen = 32

// LoadOrCreateSecret reads the instance secret from path. When the file
// does not exist it is created (mode 0600) with 32 random bytes written as
// hex, and created is true. Every instance of one deployment needs the same
// file, or they cannot read each other's keys and cookies.
func LoadOrCreateSecret(path string) (secret []byte, created bool, err error) {
	secret, err = LoadSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create directory for secret key file: %w", err)
	}
	raw := make([]byte, minSecretLen)
	rand.Read(raw)
	// O_EXCL: when two processes start at once, one writes and the other
	// reads what it wrote.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		secret, err = LoadSecret(path)
		return secret, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("create secret key file: %w", err)
	}
	text := []byte(hex.EncodeToString(raw) + "\n")
	if _, err := f.Write(text); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write secret key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write secret key file: %w", err)
	}
	return bytes.TrimSpace(text), true, nil
}

// LoadSecret reads an existing secret key file. Its content (surrounding
// white space removed) is the key material, at least 32 bytes of it; any
// text will do, such as the output of `openssl rand -hex 32`.
func LoadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret key file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < minSecretLen {
		return nil, fmt.Errorf("secret key file %s holds %d bytes, fewer than %d: write `openssl rand -hex 32` into it, or remove it to have one generated (keys sealed with the old secret become unreadable)", path, len(b), minSecretLen)
	}
	return b, nil
}

// Sealer encrypts and authenticates small secrets (private keys, cookie
// payloads) with a key derived from the instance secret for one purpose.
type Sealer struct {
	aead interface {
		Seal(dst, nonce, plaintext, additionalData []byte) []byte
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
		NonceSize() int
	}
}

// NewSealer derives a sealing key from secret for purpose, so that a value
// sealed for one purpose never opens for another.
func NewSealer(secret []byte, purpose string) (*Sealer, error) {
	key, err := hkdf.Key(sha256.New, secret, nil, "mxidp seal: "+purpose, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext; context is authenticated but not encrypted and
// must be given again to Open (it binds the value to, say, its key ID).
func (s *Sealer) Seal(plaintext, context []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+chacha20poly1305.Overhead)
	rand.Read(nonce) // XChaCha's 192-bit nonces are safe to choose at random
	return s.aead.Seal(nonce, nonce, plaintext, context)
}

// ErrUnseal means a sealed value does not open: it was sealed with another
// secret, for another context, or altered.
var ErrUnseal = errors.New("sealed value does not open with this secret key")

// Open reverses Seal.
func (s *Sealer) Open(sealed, context []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrUnseal
	}
	out, err := s.aead.Open(nil, sealed[:n], sealed[n:], context)
	if err != nil {
		return nil, ErrUnseal
	}
	return out, nil
}
