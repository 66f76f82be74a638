"""What a person looks at: shard-folder summaries and preview pictures of every modality."""
