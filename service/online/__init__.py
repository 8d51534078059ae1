"""Online adaptation between retunes: outcome statistics with forgetting, read from the journal."""
