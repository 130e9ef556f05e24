fn twice(x) = x * 2.0
