"""tierwise: route coding-agent tasks to the cheapest model tier that will get them done."""
