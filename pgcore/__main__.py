"""``python -m pgcore``: train, resume, evaluate and save a policy from the command line (see
:func:`pgcore.training.main`, and ``python -m pgcore --algo ppo-clip --help``)."""

from pgcore.training import main

if __name__ == "__main__":
    main()
