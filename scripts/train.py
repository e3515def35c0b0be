"""Train like `rossmann-embed train`, for people who prefer a script: same options."""

import sys

from rossmann_embed.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
