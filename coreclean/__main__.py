from .cli.main import main

if __name__ == "__main__":  # Dask's worker processes re-import the main module; they must not run the CLI again
    raise SystemExit(main())
