//! mtcnn (being written)
