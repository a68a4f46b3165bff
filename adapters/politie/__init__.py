"""The police adapter: answers `politie.meldingen` from a BVH-style register extract."""
