//! dlib_format (being written)
