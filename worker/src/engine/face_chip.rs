//! face_chip (being written)
