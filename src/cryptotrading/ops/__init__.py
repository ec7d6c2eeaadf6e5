"""Operations on the stores: schema lifecycle, checks, maintenance, export, info."""
