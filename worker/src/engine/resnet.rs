//! resnet (being written)
