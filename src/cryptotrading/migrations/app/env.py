from cryptotrading.migrations.environment import run

run()
