"""One module per concept of the chapter, plus the helpers they share."""
