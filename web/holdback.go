package web

import (
	"net/http"
	"strings"
)

// holdBack passes a handler's answer through unless hold, asked once when
// the status is written, keeps it back: then nothing of it is sent, and of
// its body only the first keep bytes are remembered, so that the caller
// can answer in its place. The library's answers that mxidp words itself
// (plain-text errors, client refusals, answers made from a cut body) are
// caught this way.
type holdBack struct {
	http.ResponseWriter
	hold func(status int) bool
	keep int

	wrote, held bool
	kept        strings.Builder
}

func (h *holdBack) WriteHeader(status int) {
	if h.wrote {
		return
	}
	h.wrote = true
	if h.hold(status) {
		h.held = true
		return
	}
	h.ResponseWriter.WriteHeader(status)
}

func (h *holdBack) Write(b []byte) (int, error) {
	if !h.wrote {
		h.WriteHeader(http.StatusOK)
	}
	if h.held {
		if room := h.keep - h.kept.Len(); room > 0 {
			h.kept.Write(b[:min(room, len(b))])
		}
		return len(b), nil
	}
	return h.ResponseWriter.Write(b)
}

func (h *holdBack) Unwrap() http.ResponseWriter { return h.ResponseWriter }
