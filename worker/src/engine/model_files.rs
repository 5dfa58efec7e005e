//! model_files (being written)
