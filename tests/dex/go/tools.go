//go:build tools

// Package tools pins the Dex release that Lanyard's tests run as their
// OpenID Connect provider: scripts/dex builds github.com/dexidp/dex/cmd/dex
// with this module's go.mod and go.sum (-mod=readonly), so every machine
// builds the same Dex from the same dependency versions.
package tools

import _ "github.com/dexidp/dex/cmd/dex"
