"""Models shipped with speechlstm (package data: one directory per model)."""
