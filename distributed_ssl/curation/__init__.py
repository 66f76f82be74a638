"""Data curation: embed records with a trained encoder, cluster them, and prune or deduplicate by cluster."""
