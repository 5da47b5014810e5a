"""`python -m pab_campaign.cli COMMAND ...`, the same as `pab-campaign COMMAND ...`."""
import sys

from pab_campaign.cli import main

sys.exit(main())
