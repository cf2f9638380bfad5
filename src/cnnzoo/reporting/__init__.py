"""What people read: the leaderboard, figures, what a network learned, the docs' pictures."""
