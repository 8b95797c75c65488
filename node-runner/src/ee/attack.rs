//! Attacks a node runner holding the public model can mount on an encrypted kernel.
