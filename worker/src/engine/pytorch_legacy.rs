//! pytorch_legacy (being written)
