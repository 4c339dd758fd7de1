"""What a run's results say: Table-3 tables, significance statistics, the HTML report."""
