"""Lambda entry points: thin — parse, call one piece of logic, map the result to a response."""
