{{ staged_trips('green', 'lpep') }}
