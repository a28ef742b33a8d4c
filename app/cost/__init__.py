"""What an operation costs, by the store it spends in, before and after it runs."""
