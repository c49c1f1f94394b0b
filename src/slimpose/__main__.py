from slimpose.cli import main

raise SystemExit(main())
