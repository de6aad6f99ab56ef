//! HTTP tests live in tests/.
