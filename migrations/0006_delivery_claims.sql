-- A webhook delivery is recorded in the same D1 batch as its effects; `claim` is the batch's
-- random marker, so the effects apply only when this batch recorded the delivery.
ALTER TABLE webhook_deliveries ADD COLUMN claim TEXT;
