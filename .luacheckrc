-- spec/fixtures/*.lua are generated from PyTorch (gen_*.py): data, one
-- long line per case
exclude_files = {"spec/fixtures/*.lua"}
