//! shape_predictor (being written)
