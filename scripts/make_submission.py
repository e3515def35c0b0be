"""Write a Kaggle submission like `rossmann-embed submit`, for people who prefer a script:
same options (--run RUN_DIR [--run ...] --data-dir DIR [--test TEST_CSV] --out FILE)."""

import sys

from rossmann_embed.cli import main

if __name__ == "__main__":
    main(["submit", *sys.argv[1:]])
