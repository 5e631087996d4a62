"""ebMS 2.0 (Digikoppeling osb profiles). Not built yet: see the BerichtVerwerk issue."""
